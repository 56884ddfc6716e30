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
    Temp {
        /// Index of the physical temp buffer, `< Plan::n_temp_buffers`.
        buffer: usize,
    },
    /// The `i`-th output of the plan (a tensor the caller asked for).
    Output(usize),
}

/// One buffer slot of a plan: a dense, row-major array of `len` elements
/// of `dtype`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Number of elements (not bytes).
    pub len: usize,
    /// Element type; ids and labels are `U32`.
    pub dtype: DType,
    /// Whether the buffer is an input, an output or plan-owned scratch.
    pub kind: SlotKind,
}

/// A read of a slot by an element-wise kernel whose output has shape
/// `shape`: element `idx` (a multi-index over `shape`) is read at
/// `offset + sum(idx[d] * strides[d])`. A stride of 0 broadcasts; permuted
/// strides transpose; an offset starts a slice (`narrow`) inside the slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// The slot read.
    pub slot: SlotId,
    /// Element stride per dimension of the reading kernel's shape (one per
    /// dimension; 0 broadcasts that dimension).
    pub strides: Vec<usize>,
    /// Element index of the view's first element inside the slot.
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
    /// Sum (of an empty axis: 0).
    Sum,
    /// NaN-propagating maximum.
    Max,
}

impl ReduceOp {
    /// `"sum"` or `"max"`, as `explain` prints it.
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
    /// Extra inputs, read as views over the result's shape; `expr` refers
    /// to them as `Expr::Input(j)`.
    pub inputs: Vec<View>,
    /// The value stored; `Expr::Acc` is the matmul's or reduction's result.
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
        /// The output's shape; `out` holds its product of elements.
        shape: Vec<usize>,
        /// The slots read, each as a view over `shape`; `expr` refers to
        /// them as `Expr::Input(j)`.
        inputs: Vec<View>,
        /// The scalar expression computed per element.
        expr: Expr,
        /// The slot written, dense over `shape`.
        out: SlotId,
    },
    /// `out[m, n] = epilogue(Σ_k A[m, k] · B[k, n])`. `a` holds A as
    /// `[m, k]`, or `[k, m]` when `trans_a`; `b` holds B as `[k, n]`, or
    /// `[n, k]` when `trans_b`.
    Matmul {
        /// Rows of A and of the output.
        m: usize,
        /// The contracted dimension (columns of A, rows of B).
        k: usize,
        /// Columns of B and of the output.
        n: usize,
        /// The slot holding A.
        a: SlotId,
        /// The slot holding B.
        b: SlotId,
        /// A is stored transposed, as `[k, m]`.
        trans_a: bool,
        /// B is stored transposed, as `[n, k]`.
        trans_b: bool,
        /// Element-wise work on each result before it is stored (`None`:
        /// the product itself).
        epilogue: Option<Epilogue>,
        /// The `[m, n]` output slot.
        out: SlotId,
    },
    /// Input seen as `[outer, len, inner]`;
    /// `out[o, i] = epilogue(reduce_l in[o, l, i])` (no epilogue: the
    /// reduced value itself). An epilogue reads its views over
    /// `[outer, inner]`; that is how a bias gradient and its SGD update are
    /// one launch.
    Reduce {
        /// Sum or max.
        op: ReduceOp,
        /// The slot reduced.
        input: SlotId,
        /// Product of the dimensions before the reduced axis.
        outer: usize,
        /// Length of the reduced axis.
        len: usize,
        /// Product of the dimensions after the reduced axis.
        inner: usize,
        /// Element-wise work on each reduced value before it is stored.
        epilogue: Option<Epilogue>,
        /// The `[outer, inner]` output slot.
        out: SlotId,
    },
    /// Zero padding: input seen as `[outer, len, inner]`, output as
    /// `[outer, total, inner]`; `out[o, before + l, i] = in[o, l, i]` and
    /// every other element is 0 (`before + len <= total`).
    Pad {
        /// The slot padded.
        input: SlotId,
        /// Product of the dimensions before the padded axis.
        outer: usize,
        /// The padded axis's length in the input.
        len: usize,
        /// Product of the dimensions after the padded axis.
        inner: usize,
        /// Zeros inserted before the input along the axis.
        before: usize,
        /// The padded axis's length in the output.
        total: usize,
        /// The `[outer, total, inner]` output slot.
        out: SlotId,
    },
    /// Input seen as `[outer, len, inner]` (`len >= 1`); `out[o, i]` (u32)
    /// is the first `l` where `in[o, l, i]` is largest (smallest when
    /// `min`). A NaN counts as the extreme, so the first NaN wins.
    ArgMax {
        /// The slot searched.
        input: SlotId,
        /// Product of the dimensions before the searched axis.
        outer: usize,
        /// Length of the searched axis.
        len: usize,
        /// Product of the dimensions after the searched axis.
        inner: usize,
        /// Argmin instead of argmax.
        min: bool,
        /// The `[outer, inner]` u32 output slot.
        out: SlotId,
    },
    /// `out[i, :] = table[ids[i], :]`; `table` is `[rows, dim]`, `ids` u32 of
    /// length `n`, all ids `< rows` (checked when the op was built).
    Gather {
        /// The `[rows, dim]` table.
        table: SlotId,
        /// The `n` u32 row ids.
        ids: SlotId,
        /// Rows of the table.
        rows: usize,
        /// Elements per row.
        dim: usize,
        /// Number of ids (rows gathered).
        n: usize,
        /// The `[n, dim]` output slot.
        out: SlotId,
    },
    /// `out = zeros([rows, dim]); out[ids[i], :] += src[i, :]`, summed in
    /// the order of `i` so that the result is deterministic.
    ScatterAdd {
        /// The `[n, dim]` rows added.
        src: SlotId,
        /// The `n` u32 destination row ids, each `< rows`.
        ids: SlotId,
        /// Rows of the output.
        rows: usize,
        /// Elements per row.
        dim: usize,
        /// Number of ids (rows of `src`).
        n: usize,
        /// The `[rows, dim]` output slot.
        out: SlotId,
    },
    /// In place: `target[ids[i], :] += scale · factor · src[i, :]` (rows
    /// summed in the order of `i`). `target` is an input slot (a parameter);
    /// `out == target`. This is the sparse embedding update.
    IndexAddInPlace {
        /// The `[n, dim]` rows added.
        src: SlotId,
        /// The `n` u32 destination row ids, each `< rows`.
        ids: SlotId,
        /// The constant factor, as the bits of an `f64` (`f64::to_bits`), so
        /// that the kernel can be hashed.
        scale: u64,
        /// A one-element slot multiplying `scale` (a learning rate that is
        /// data, not part of the plan); the scheduler sets it only where
        /// `scale` is ±1, so the product is exact.
        factor: Option<SlotId>,
        /// Rows of the target.
        rows: usize,
        /// Elements per row.
        dim: usize,
        /// Number of ids (rows of `src`).
        n: usize,
        /// The `[rows, dim]` target, read and written.
        out: SlotId,
    },
    /// Mean over the batch of `-log softmax(logits[b])[labels[b]]`; `out` is a
    /// one-element slot. `labels` are u32 `< classes`.
    SoftmaxXent {
        /// The `[batch, classes]` logits.
        logits: SlotId,
        /// The `batch` u32 class labels.
        labels: SlotId,
        /// Rows of `logits`.
        batch: usize,
        /// Columns of `logits`.
        classes: usize,
        /// The one-element loss slot.
        out: SlotId,
    },
    /// `out[b, c] = (softmax(logits[b])[c] - [c == labels[b]]) · grad / batch`,
    /// where `grad` is a one-element slot (the upstream gradient of the loss).
    SoftmaxXentGrad {
        /// The `[batch, classes]` logits.
        logits: SlotId,
        /// The `batch` u32 class labels.
        labels: SlotId,
        /// The one-element upstream gradient of the loss.
        grad: SlotId,
        /// Rows of `logits`.
        batch: usize,
        /// Columns of `logits`.
        classes: usize,
        /// The `[batch, classes]` gradient slot.
        out: SlotId,
    },
    /// `SoftmaxXent` and `SoftmaxXentGrad` over the same logits in one
    /// launch: `out` gets the mean loss (one element), `grad_out` the
    /// gradient `(softmax - onehot) · grad / batch`. `grad` must be written
    /// before this launch (the scheduler fuses only then).
    SoftmaxXentWithGrad {
        /// The `[batch, classes]` logits.
        logits: SlotId,
        /// The `batch` u32 class labels.
        labels: SlotId,
        /// The one-element upstream gradient of the loss.
        grad: SlotId,
        /// Rows of `logits`.
        batch: usize,
        /// Columns of `logits`.
        classes: usize,
        /// The one-element loss slot.
        out: SlotId,
        /// The `[batch, classes]` gradient slot.
        grad_out: SlotId,
    },
    /// Row-wise log-softmax of a `[rows, cols]` slot.
    LogSoftmax {
        /// The `[rows, cols]` slot.
        input: SlotId,
        /// Number of rows (each normalized on its own).
        rows: usize,
        /// Elements per row.
        cols: usize,
        /// The `[rows, cols]` output slot.
        out: SlotId,
    },
    /// Mean over `n` of `max(x, 0) - x·t + log(1 + exp(-|x|))`: binary cross
    /// entropy with logits `x` and float targets `t` in [0, 1].
    LogisticLoss {
        /// The `n` logits.
        logits: SlotId,
        /// The `n` float targets.
        targets: SlotId,
        /// Number of elements.
        n: usize,
        /// The one-element loss slot.
        out: SlotId,
    },
    /// `out[i] = (sigmoid(x[i]) - t[i]) · grad / n`.
    LogisticLossGrad {
        /// The `n` logits.
        logits: SlotId,
        /// The `n` float targets.
        targets: SlotId,
        /// The one-element upstream gradient of the loss.
        grad: SlotId,
        /// Number of elements.
        n: usize,
        /// The `n`-element gradient slot.
        out: SlotId,
    },
    /// A user-defined op, run on the host (inputs are read back, the result
    /// uploaded). `backward_input` is `None` for the forward, or which input's
    /// gradient to compute (then `inputs` end with the upstream gradient).
    Custom {
        /// The op.
        op: Arc<dyn CustomOp>,
        /// The forward inputs' slots, then (for a backward) the upstream
        /// gradient's.
        inputs: Vec<SlotId>,
        /// The forward inputs' shapes (not the upstream gradient's).
        input_shapes: Vec<Vec<usize>>,
        /// `None`: run `CustomOp::forward`; `Some(i)`: run
        /// `CustomOp::backward` for input `i`.
        backward_input: Option<usize>,
        /// The shape written: the op's output, or input `i`'s shape for a
        /// backward.
        out_shape: Vec<usize>,
        /// The output slot.
        out: SlotId,
    },
}

impl Kernel {
    /// The slot this kernel writes (its first output; see
    /// [`Kernel::outputs`]).
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
            Kernel::IndexAddInPlace {
                src,
                ids,
                out,
                factor,
                ..
            } => [*src, *ids, *out].into_iter().chain(*factor).collect(),
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
    /// What runs.
    pub kernel: Kernel,
    /// Human-readable list of the graph ops this launch computes.
    pub fused: Vec<String>,
}

impl Launch {
    /// The kernel, with a matmul's sizes and variant, and what it fused, e.g.
    /// `matmul 1024x250x100 [64x64/4x4/k16 (heuristic)]: matmul + add + tanh`.
    pub fn label(&self, note: &str) -> String {
        let mut name = match &self.kernel {
            Kernel::Matmul {
                m,
                k,
                n,
                trans_a,
                trans_b,
                ..
            } => format!(
                "matmul {m}x{k}x{n}{}{}",
                if *trans_a { " Aᵀ" } else { "" },
                if *trans_b { " Bᵀ" } else { "" }
            ),
            k => k.name().to_string(),
        };
        if !note.is_empty() {
            name = format!("{name} [{note}]");
        }
        if self.fused.is_empty() {
            name
        } else {
            format!("{name}: {}", self.fused.join(" + "))
        }
    }
}

/// A whole realization: launches in execution order over `slots`.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Unique per compiled plan; backends key their per-plan caches on it.
    pub id: u64,
    /// Every slot, indexed by `SlotId`; each slot's `kind` says which
    /// input or output it is, or which temp buffer it shares.
    pub slots: Vec<Slot>,
    /// The launches, in the order they run.
    pub launches: Vec<Launch>,
    /// Number of input slots (`SlotKind::Input(0..n_inputs)`).
    pub n_inputs: usize,
    /// Number of output slots.
    pub n_outputs: usize,
    /// Number of distinct temp buffers after liveness sharing.
    pub n_temp_buffers: usize,
}
