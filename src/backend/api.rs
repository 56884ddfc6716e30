//! What every backend offers, and the buffers it hands out: the interface
//! the layers above use, without naming any backend.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::ir::{Plan, SlotKind};

/// Counters a backend keeps so that tests can assert that a warmed-up
/// training step creates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Device buffers allocated (not counting reuse from a pool).
    pub buffers_created: u64,
    /// Compute pipelines compiled (0 on the CPU).
    pub pipelines_created: u64,
    /// Bind groups created (0 on the CPU).
    pub bind_groups_created: u64,
    /// Command submissions to the device queue (0 on the CPU).
    pub submissions: u64,
    /// Plan launches executed.
    pub launches: u64,
    /// Compute dispatches recorded (a launch may take several, or none).
    pub dispatches: u64,
    /// Compiled pipelines held now.
    pub pipelines_live: u64,
    /// Bytes of device memory held now (live + pooled).
    pub bytes_in_use: u64,
    /// Most bytes ever held at once.
    pub peak_bytes: u64,
}

/// A buffer a backend made. Backends downcast it to their own type.
pub trait DeviceBuffer: Any + Send + Sync + fmt::Debug {
    /// Number of elements.
    fn len(&self) -> usize;
    /// Whether the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The element type.
    fn dtype(&self) -> DType;
    /// The contents of a u32 buffer, when the backend keeps them on the
    /// host (ids are always uploaded from the host; reading them back would
    /// cost a device round trip).
    fn host_ids(&self) -> Option<Arc<Vec<u32>>> {
        None
    }
}

/// A buffer living on some backend; cheap to clone.
#[derive(Clone)]
pub struct Storage(Arc<dyn DeviceBuffer>);

impl Storage {
    /// Wraps a backend's buffer.
    pub fn new(b: Arc<dyn DeviceBuffer>) -> Storage {
        Storage(b)
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype()
    }
    /// The host copy of a u32 buffer's ids, when the backend keeps one
    /// (see [`DeviceBuffer::host_ids`]).
    pub fn host_ids(&self) -> Option<Arc<Vec<u32>>> {
        self.0.host_ids()
    }
    /// The backend's own buffer type, or `None` when another backend made it.
    pub fn downcast<T: DeviceBuffer>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.0.clone();
        any.downcast::<T>().ok()
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Storage({:?})", self.0)
    }
}

/// Checks that `inputs` fit `plan`'s input slots (count, length, dtype);
/// `who` names the backend in the error.
pub fn check_inputs(plan: &Plan, inputs: &[Storage], who: &'static str) -> Result<()> {
    if inputs.len() != plan.n_inputs {
        return Err(Error::invalid(
            who,
            format!("plan takes {} inputs, got {}", plan.n_inputs, inputs.len()),
        ));
    }
    for slot in &plan.slots {
        if let SlotKind::Input(k) = slot.kind {
            let b = inputs
                .get(k)
                .ok_or_else(|| Error::invalid(who, format!("no input {k}")))?;
            if b.len() != slot.len || b.dtype() != slot.dtype {
                return Err(Error::invalid(
                    who,
                    format!(
                        "input {k} is {} x {}, the plan expects {} x {}",
                        b.len(),
                        b.dtype(),
                        slot.len,
                        slot.dtype
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What every backend does. A [`Device`](crate::Device) holds one; tensor
/// code never calls it directly.
pub trait Backend: Send + Sync {
    /// Short description, e.g. `cpu` or `wgpu: NVIDIA H100 (Vulkan)`.
    fn name(&self) -> String;
    /// Copies host values into a new buffer on this backend (an error for
    /// a dtype the backend lacks, or a buffer over its limits).
    fn upload(&self, data: &HostData) -> Result<Storage>;
    /// Reads a buffer back, waiting for pending work that writes it.
    fn download(&self, storage: &Storage) -> Result<HostData>;
    /// Runs `plan` with `inputs` bound to its input slots (in order) and
    /// returns its outputs (in order). Kernels flagged in place write into
    /// their input's storage. May return before the device has finished;
    /// `download` and `sync` wait.
    fn execute(&self, plan: &Plan, inputs: &[Storage]) -> Result<Vec<Storage>>;
    /// Waits until all submitted work has finished.
    fn sync(&self) -> Result<()>;
    /// The backend's counters since it was created.
    fn counters(&self) -> Counters;
    /// Whether this backend runs on a GPU (hardware or software).
    fn is_gpu(&self) -> bool;
    /// Lets a backend forget per-plan state when a plan is evicted.
    fn forget_plan(&self, _plan_id: u64) {}
    /// Turns per-launch GPU timing on or off for later executions. Off by
    /// default because it changes how work is recorded and waits for the
    /// device; backends without device timers ignore it.
    fn set_profiling(&self, _on: bool) {}
    /// The most recent profiled execution, one entry per launch: a label
    /// (kernel and the ops it fused) and its GPU time in milliseconds.
    /// `None` when nothing was profiled or the device cannot time kernels.
    fn kernel_times(&self) -> Option<Vec<(String, f64)>> {
        None
    }
    /// One note per launch of `plan` on what this backend runs for it
    /// (a matmul's variant and how it was chosen, a reduction's strategy),
    /// for `explain`; empty strings where there is nothing to say. May
    /// tune or compile. Backends with one way to run each kernel return
    /// nothing.
    fn launch_notes(&self, _plan: &Plan) -> Vec<String> {
        Vec::new()
    }
}
