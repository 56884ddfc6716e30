//! The user-facing tensor handle: creation, reading values back, gradient
//! bookkeeping; `realize` gathers a pending step for the scheduler. The ops
//! live in `ops/`, one file per family.

mod realize;

use std::fmt;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::device::Device;
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::ir::Op;
pub use realize::{Assign, plan_for, realize, realize_step};

/// A lazy n-dimensional array. Cloning copies the handle, not the data.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

/// Element types that can be put into and read out of a tensor.
/// Implemented for f32, f64 (float tensors) and u32 (ids).
pub trait Element: Copy + 'static {
    /// The values as host data of the matching dtype.
    fn into_host(v: Vec<Self>) -> HostData;
}
impl Element for f32 {
    fn into_host(v: Vec<f32>) -> HostData {
        HostData::F32(v)
    }
}
impl Element for f64 {
    fn into_host(v: Vec<f64>) -> HostData {
        HostData::F64(v)
    }
}
impl Element for u32 {
    fn into_host(v: Vec<u32>) -> HostData {
        HostData::U32(v)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({} {:?} {}{})",
            self.0.op.name(),
            self.0.shape,
            self.0.dtype,
            if self.requires_grad_flag() {
                ", requires_grad"
            } else {
                ""
            }
        )
    }
}

impl Tensor {
    pub(crate) fn from_node(n: Node) -> Tensor {
        Tensor(Arc::new(n))
    }

    /// The handle of a graph node.
    pub(crate) fn from_arc(n: &Arc<Node>) -> Tensor {
        Tensor(n.clone())
    }

    /// A new op node on the first input's device (callers check that every
    /// input is on it).
    pub(crate) fn op(op: Op, inputs: Vec<Tensor>, shape: Vec<usize>, dtype: DType) -> Tensor {
        let device = inputs[0].device();
        let inputs = inputs.into_iter().map(|t| t.0).collect();
        Tensor::from_node(Node::new(op, inputs, shape, dtype, device))
    }

    /// The node's inputs, as tensors.
    pub(crate) fn inputs(&self) -> Vec<Tensor> {
        self.0.inputs.iter().map(Tensor::from_arc).collect()
    }

    // ---- creation -------------------------------------------------------

    /// A realized tensor of `shape` from row-major values, on the CPU
    /// device (`Tensor::from_host` for another); its dtype is `T`'s. An
    /// error when `data.len()` is not the product of `shape`. A leaf: it
    /// takes part in autograd once marked with [`Tensor::requires_grad`].
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_host(T::into_host(data), shape, &Device::cpu())
    }

    /// A realized tensor of `shape` from row-major host data, uploaded to
    /// `device`. An error when the length is not the product of `shape`.
    pub fn from_host(data: HostData, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(Error::invalid(
                "from_vec",
                format!(
                    "{} values do not fill shape {shape:?} ({n} elements)",
                    data.len()
                ),
            ));
        }
        let storage = device.backend().upload(&data)?;
        Ok(Tensor::from_node(Node::leaf(
            storage,
            shape.to_vec(),
            device.clone(),
        )))
    }

    /// A realized 0-d tensor holding `v` converted to `dtype`.
    pub fn scalar(v: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::from_host(HostData::from_f64(&[v], dtype), &[], device)
    }

    /// A realized u32 tensor of ids (embedding rows, class labels); ids
    /// never take a gradient.
    pub fn ids(ids: Vec<u32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        Tensor::from_host(HostData::U32(ids), shape, device)
    }

    /// A lazy constant of `shape` filled with `value`; costs no memory until
    /// realized on its own (kernels that read it fold it in). No gradient
    /// unless marked with `requires_grad`.
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Tensor {
        Tensor::from_node(Node::new(
            Op::Fill(value),
            vec![],
            shape.to_vec(),
            dtype,
            device.clone(),
        ))
    }
    /// `Tensor::full(shape, 0.0, …)`: a lazy constant.
    pub fn zeros(shape: &[usize], dtype: DType, device: &Device) -> Tensor {
        Tensor::full(shape, 0.0, dtype, device)
    }
    /// `Tensor::full(shape, 1.0, …)`: a lazy constant.
    pub fn ones(shape: &[usize], dtype: DType, device: &Device) -> Tensor {
        Tensor::full(shape, 1.0, dtype, device)
    }

    /// A realized tensor uniform in `[lo, hi)`, drawn from `rng` in f64
    /// (row-major order) and converted to `dtype`; `lo < hi`.
    pub fn rand_uniform(
        shape: &[usize],
        lo: f64,
        hi: f64,
        dtype: DType,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_host(HostData::from_f64(&v, dtype), shape, device)
    }

    /// A realized tensor, normal with mean 0 and standard deviation `std`,
    /// drawn from `rng` in f64 and converted to `dtype`.
    pub fn randn(
        shape: &[usize],
        std: f64,
        dtype: DType,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| std * Distribution::<f64>::sample(&StandardNormal, rng))
            .collect();
        Tensor::from_host(HostData::from_f64(&v, dtype), shape, device)
    }

    /// Xavier/Glorot uniform for a `[fan_in, fan_out]` weight:
    /// U(±sqrt(6 / (fan_in + fan_out))).
    pub fn xavier_uniform(
        fan_in: usize,
        fan_out: usize,
        dtype: DType,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<Tensor> {
        let a = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
        Tensor::rand_uniform(&[fan_in, fan_out], -a, a, dtype, device, rng)
    }

    /// A seeded generator (`StdRng`), for reproducible initialisation.
    pub fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    // ---- metadata -------------------------------------------------------

    /// The dimensions, outermost first (empty for a 0-d scalar). Known
    /// without realizing.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    /// Number of elements (1 for a 0-d scalar).
    pub fn numel(&self) -> usize {
        self.0.numel()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    /// The device the value lives (or will live) on.
    pub fn device(&self) -> Device {
        self.0.device.clone()
    }
    /// A process-unique id of the underlying node.
    pub fn id(&self) -> u64 {
        self.0.id
    }
    /// Whether the value has been computed (or was given).
    pub fn is_realized(&self) -> bool {
        self.0.is_realized()
    }
    /// Names the tensor, for an application's messages and files (the NER
    /// trainer names parameters in NaN reports and checkpoints by it).
    /// Labels the node itself, so every clone of the handle sees it.
    pub fn with_label(self, label: &str) -> Tensor {
        self.0.set_label(label);
        self
    }
    /// The name given with [`Tensor::with_label`], if any.
    pub fn label(&self) -> Option<String> {
        self.0.label()
    }

    // ---- gradients ------------------------------------------------------

    /// Marks this tensor as a parameter whose gradient `backward` computes
    /// (ops built from it afterwards record the graph). No effect on a u32
    /// tensor: ids never take a gradient.
    pub fn requires_grad(self) -> Tensor {
        if self.dtype().is_float() {
            self.0.set_requires_grad(true);
        }
        self
    }
    /// Turns gradient tracking on or off for this tensor (always off for
    /// u32); ops built before the call keep their setting.
    pub fn set_requires_grad(&self, on: bool) {
        self.0.set_requires_grad(on && self.dtype().is_float());
    }
    /// Whether gradients flow to or through this tensor: a marked
    /// parameter, or an op result built (with recording on) from one.
    pub fn requires_grad_flag(&self) -> bool {
        self.0.requires_grad()
    }
    /// The gradient left by `backward` (summed over calls until cleared).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad().map(Tensor)
    }
    /// Clears the gradient left by `backward`, so that the next call does
    /// not add to it.
    pub fn zero_grad(&self) {
        self.0.set_grad(None);
    }
    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        self.0.set_grad(g.map(|t| t.0));
    }
    /// The same values, cut off from the graph: no gradient flows through
    /// it (a realized value becomes a new leaf; a pending one a `detach`
    /// node).
    pub fn detach(&self) -> Tensor {
        match self.0.storage() {
            Some(s) => Tensor::from_node(Node::leaf(s, self.shape().to_vec(), self.device())),
            None => Tensor::op(
                Op::Detach,
                vec![self.clone()],
                self.shape().to_vec(),
                self.dtype(),
            ),
        }
    }

    // ---- reading back ---------------------------------------------------

    /// Computes the value now if it is pending (with every pending value it
    /// depends on, in one plan).
    pub fn realize(&self) -> Result<()> {
        realize(std::slice::from_ref(self))
    }

    /// The values, row-major, in the tensor's dtype; realizes first.
    pub fn to_host(&self) -> Result<HostData> {
        self.realize()?;
        let s = self
            .0
            .storage()
            .ok_or_else(|| Error::Other("realize left no value".into()))?;
        self.device().backend().download(&s)
    }
    /// The values, row-major, as f32 (f64 rounded, ids converted);
    /// realizes first.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        Ok(self.to_host()?.to_f32())
    }
    /// The values, row-major, as f64 (exact for every dtype); realizes
    /// first.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        Ok(self.to_host()?.to_f64())
    }
    /// The ids of a u32 tensor, row-major (an error for a float tensor).
    /// Where the backend keeps a host copy of realized ids (the GPU backend
    /// does), they are read from it, without a device round trip.
    pub fn to_ids(&self) -> Result<Vec<u32>> {
        // Id buffers are written only by uploads, so a host copy is
        // current: no device round trip.
        if let Some(v) = self.0.storage().and_then(|s| s.host_ids()) {
            return Ok(v.as_ref().clone());
        }
        match self.to_host()? {
            HostData::U32(v) => Ok(v),
            other => Err(Error::invalid(
                "to_ids",
                format!("tensor holds {}, not u32", other.dtype()),
            )),
        }
    }
    /// The largest id of a realized u32 tensor (`None` when empty),
    /// computed once.
    pub fn max_id(&self) -> Result<Option<u32>> {
        if let Some(m) = self.0.max_id.get() {
            return Ok(*m);
        }
        let m = self.to_ids()?.iter().copied().max();
        Ok(*self.0.max_id.get_or_init(|| m))
    }

    /// The position and value of the first id `>= rows`, if any.
    pub(crate) fn first_id_at_least(&self, rows: usize) -> Result<Option<(usize, u32)>> {
        match self.max_id()? {
            Some(m) if m as usize >= rows => {}
            _ => return Ok(None),
        }
        Ok(self
            .to_ids()?
            .iter()
            .copied()
            .enumerate()
            .find(|(_, i)| *i as usize >= rows))
    }

    /// The single value of a one-element tensor, as f64 (an error for any
    /// other size); realizes first.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!(
                    "tensor of shape {:?} has {} elements",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// A copy on `device` (realizes first), as a new leaf that keeps the
    /// `requires_grad` flag; gradients do not flow back to `self`. The same
    /// tensor when it is already there.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if &self.device() == device {
            return Ok(self.clone());
        }
        let t = Tensor::from_host(self.to_host()?, self.shape(), device)?;
        t.set_requires_grad(self.requires_grad_flag());
        Ok(t)
    }

    /// A copy converted to `dtype` (f32 ↔ f64), as a new leaf that keeps the
    /// `requires_grad` flag (realizes first); gradients do not flow back to
    /// `self`. The same tensor when the dtype already matches.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let data = HostData::from_f64(&self.to_vec_f64()?, dtype);
        let t = Tensor::from_host(data, self.shape(), &self.device())?;
        t.set_requires_grad(self.requires_grad_flag());
        Ok(t)
    }

    /// Replaces a leaf's value (a parameter update) with `value`'s,
    /// computing `value` and writing it in one plan. `self` must be a
    /// realized leaf and `value` of the same shape and dtype. Not recorded
    /// for autograd.
    pub fn assign(&self, value: &Tensor) -> Result<()> {
        realize_step(
            &[],
            &[Assign::Dense {
                target: self.clone(),
                value: value.clone(),
            }],
        )
    }

    pub(crate) fn node(&self) -> &Node {
        &self.0
    }
}
