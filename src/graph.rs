//! The computation graph: source nodes hold data (inputs, parameters),
//! interior nodes are operations. Nodes are immutable once built, apart from
//! the value they get when realized and the gradient `backward` leaves on a
//! leaf. The tensor layer's `Tensor` is a cheap handle to one.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::Storage;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::lock;
use crate::flags::with_flag;
use crate::hash::FastSet;
use crate::ir::Op;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One node of the graph.
pub struct Node {
    /// Unique per process, increasing in creation order.
    pub id: u64,
    /// The op that computes it (`Op::Leaf` for data).
    pub op: Op,
    /// Its operands, in the op's order.
    pub inputs: Vec<Arc<Node>>,
    /// Its shape (empty for a 0-d scalar).
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: DType,
    /// Where its value is (or will be) stored.
    pub device: Device,
    requires_grad: AtomicBool,
    storage: Mutex<Option<Storage>>,
    grad: Mutex<Option<Arc<Node>>>,
    label: Mutex<Option<String>>,
    /// The largest id in a u32 leaf, computed once (id checks run on every
    /// gather and must not cost a device round trip each time).
    pub(crate) max_id: OnceLock<Option<u32>>,
}

impl Node {
    /// A new node; it requires a gradient when recording is on, it is a
    /// float, and one of its inputs requires one.
    pub fn new(
        op: Op,
        inputs: Vec<Arc<Node>>,
        shape: Vec<usize>,
        dtype: DType,
        device: Device,
    ) -> Node {
        let requires_grad = grad_enabled()
            && dtype.is_float()
            && !matches!(op, Op::Detach)
            && inputs.iter().any(|n| n.requires_grad());
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

    /// Realized data: a source node.
    pub fn leaf(storage: Storage, shape: Vec<usize>, device: Device) -> Node {
        let n = Node::new(Op::Leaf, vec![], shape, storage.dtype(), device);
        *lock(&n.storage) = Some(storage);
        n
    }

    /// Number of elements (1 for a 0-d scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether gradients flow to or through this node.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad.load(Ordering::Relaxed)
    }
    /// Sets whether gradients flow to or through this node (nodes built
    /// from it afterwards see the new value; existing ones keep theirs).
    pub fn set_requires_grad(&self, on: bool) {
        self.requires_grad.store(on, Ordering::Relaxed)
    }
    /// The node's value, once realized.
    pub fn storage(&self) -> Option<Storage> {
        lock(&self.storage).clone()
    }
    /// Gives the node its value (realization, or a parameter update).
    pub fn set_storage(&self, s: Storage) {
        *lock(&self.storage) = Some(s);
    }
    /// Whether the node holds a value.
    pub fn is_realized(&self) -> bool {
        lock(&self.storage).is_some()
    }
    /// The gradient node `backward` left on this leaf (itself lazy).
    pub fn grad(&self) -> Option<Arc<Node>> {
        lock(&self.grad).clone()
    }
    /// Replaces the stored gradient (`None` clears it).
    pub fn set_grad(&self, g: Option<Arc<Node>>) {
        *lock(&self.grad) = g;
    }
    /// The name given with `Tensor::with_label`.
    pub fn label(&self) -> Option<String> {
        lock(&self.label).clone()
    }
    /// Names the node (an application's name for a parameter).
    pub fn set_label(&self, l: &str) {
        *lock(&self.label) = Some(l.to_string());
    }
}

/// What a walk does at a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// List the node after everything it reads.
    Expand,
    /// List the node when first reached, without walking its inputs (a
    /// source for this walk, e.g. a realized value).
    Source,
    /// Leave the node out, with whatever only it reaches.
    Skip,
}

/// The nodes reachable from `roots`, each once, inputs before their users;
/// `visit` decides at each node. Iterative: graphs of real models are deep
/// enough to overflow a recursive walk.
pub fn topo_order(roots: &[&Arc<Node>], visit: impl Fn(&Node) -> Visit) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen = FastSet::default();
    for root in roots {
        let mut stack = vec![((*root).clone(), false)];
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                order.push(n);
                continue;
            }
            if !seen.insert(n.id) {
                continue;
            }
            match visit(&n) {
                Visit::Skip => {}
                Visit::Source => order.push(n),
                Visit::Expand => {
                    stack.push((n.clone(), true));
                    for i in n.inputs.iter().rev() {
                        stack.push((i.clone(), false));
                    }
                }
            }
        }
    }
    order
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
    with_flag(&GRAD_ENABLED, false, f)
}

/// Runs `f` recording gradients even inside `no_grad` (for gradients of
/// gradients).
pub fn enable_grad<R>(f: impl FnOnce() -> R) -> R {
    with_flag(&GRAD_ENABLED, true, f)
}
