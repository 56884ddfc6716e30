//! The computation graph: source nodes hold data (inputs, parameters),
//! interior nodes are operations. Nodes are immutable once built, apart from
//! the value they get when realized and the gradient `backward` leaves on a
//! leaf; a `Tensor` is a cheap handle to one.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::backend::Storage;
use crate::device::Device;
use crate::dtype::DType;
use crate::ops::custom::CustomOp;
use crate::schedule::plan::{BinaryOp, ReduceOp, UnaryOp};
use crate::tensor::Tensor;

/// A primitive operation. Everything else composes these.
#[derive(Clone, Debug)]
pub enum Op {
    /// Data that is already realized (an input or a parameter).
    Leaf,
    /// A constant filling the node's shape; never stored, folded into the
    /// kernels that read it.
    Fill(f64),
    Unary(UnaryOp),
    /// Element-wise with NumPy broadcasting of both inputs to the node's shape.
    Binary(BinaryOp),
    /// 2-D matrix product `[m, k] · [k, n]`.
    Matmul,
    /// Reduction over one axis (removed from the shape).
    Reduce(ReduceOp, usize),
    /// Same elements, new shape.
    Reshape,
    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    Permute(Vec<usize>),
    /// Broadcast to the node's shape (size-1 or missing leading axes repeat).
    Expand,
    /// Rows of a `[rows, dim]` table picked by u32 ids: `[n, dim]`.
    Gather,
    /// `[n, dim]` rows summed into `[rows, dim]` at u32 ids.
    ScatterAdd,
    /// Mean softmax cross-entropy of `[batch, classes]` logits and u32 labels.
    SoftmaxXent,
    /// Its gradient with respect to the logits; inputs: logits, labels,
    /// upstream gradient (a scalar).
    SoftmaxXentGrad,
    /// Row-wise log-softmax of a 2-D tensor.
    LogSoftmax,
    /// Mean binary cross-entropy with logits.
    LogisticLoss,
    /// Its gradient with respect to the logits; inputs: logits, targets,
    /// upstream gradient.
    LogisticLossGrad,
    /// Identity that stops gradients.
    Detach,
    /// A user-defined op (forward, or the gradient for one input).
    Custom {
        op: Arc<dyn CustomOp>,
        backward_input: Option<usize>,
    },
}

impl Op {
    /// A short name for error messages and `explain`.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{u:?}").to_lowercase(),
            Op::Binary(b) => format!("{b:?}").to_lowercase(),
            Op::Reduce(r, axis) => format!("{}(axis {axis})", format!("{r:?}").to_lowercase()),
            Op::Custom { op, backward_input } => match backward_input {
                None => op.name().to_string(),
                Some(i) => format!("{}_grad{i}", op.name()),
            },
            Op::Fill(v) => format!("fill({v})"),
            other => {
                // The variant's name in snake_case: SoftmaxXentGrad → softmax_xent_grad.
                let s = format!("{other:?}");
                let head = s.split(['(', ' ', '{']).next().unwrap_or("op");
                let mut out = String::new();
                for (i, c) in head.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        out.push('_');
                    }
                    out.extend(c.to_lowercase());
                }
                out
            }
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct Node {
    pub id: u64,
    pub op: Op,
    pub inputs: Vec<Tensor>,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub device: Device,
    requires_grad: AtomicBool,
    storage: Mutex<Option<Storage>>,
    grad: Mutex<Option<Tensor>>,
    label: Mutex<Option<String>>,
    /// The largest id in a u32 leaf, computed once (id checks run on every
    /// gather and must not cost a device round trip each time).
    pub(crate) max_id: OnceLock<Option<u32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holds these locks across user code, so a poisoned lock still
    // guards consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub fn new(
        op: Op,
        inputs: Vec<Tensor>,
        shape: Vec<usize>,
        dtype: DType,
        device: Device,
    ) -> Node {
        let requires_grad = grad_enabled()
            && dtype.is_float()
            && !matches!(op, Op::Detach)
            && inputs.iter().any(|t| t.requires_grad_flag());
        Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op,
            inputs,
            shape,
            dtype,
            device,
            requires_grad: AtomicBool::new(requires_grad),
            storage: Mutex::new(None),
            grad: Mutex::new(None),
            label: Mutex::new(None),
            max_id: OnceLock::new(),
        }
    }

    pub fn leaf(storage: Storage, shape: Vec<usize>, device: Device) -> Node {
        let n = Node::new(Op::Leaf, vec![], shape, storage.dtype(), device);
        *lock(&n.storage) = Some(storage);
        n
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn requires_grad(&self) -> bool {
        self.requires_grad.load(Ordering::Relaxed)
    }
    pub fn set_requires_grad(&self, on: bool) {
        self.requires_grad.store(on, Ordering::Relaxed)
    }
    pub fn storage(&self) -> Option<Storage> {
        lock(&self.storage).clone()
    }
    pub fn set_storage(&self, s: Storage) {
        *lock(&self.storage) = Some(s);
    }
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.grad).clone()
    }
    pub fn set_grad(&self, g: Option<Tensor>) {
        *lock(&self.grad) = g;
    }
    pub fn label(&self) -> Option<String> {
        lock(&self.label).clone()
    }
    pub fn set_label(&self, l: &str) {
        *lock(&self.label) = Some(l.to_string());
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether new nodes record the graph for `backward`.
pub fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording gradients (like `torch.no_grad()`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}
