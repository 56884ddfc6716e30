//! The CPU reference backend, f32 and f64: obvious loops, except matmul,
//! which goes through `matrixmultiply` (strided GEMM, so transposes are free).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::{Backend, Counters, DeviceBuffer, Storage};
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::ir::{Kernel, Plan, SlotKind};

mod elementwise;
mod gemm;
mod kernels;

pub use gemm::Gemm;

#[derive(Debug)]
pub struct CpuBuffer {
    data: RwLock<HostData>,
    len: usize,
    dtype: DType,
}

impl CpuBuffer {
    pub fn new(data: HostData) -> CpuBuffer {
        CpuBuffer {
            len: data.len(),
            dtype: data.dtype(),
            data: RwLock::new(data),
        }
    }
    /// Reads the contents. A poisoned lock (a panic while writing) still
    /// yields the data: every writer replaces whole values.
    pub fn read(&self) -> RwLockReadGuard<'_, HostData> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
    fn replace(&self, data: HostData) {
        *self.data.write().unwrap_or_else(|e| e.into_inner()) = data;
    }
}

impl DeviceBuffer for CpuBuffer {
    fn len(&self) -> usize {
        self.len
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn host_ids(&self) -> Option<Arc<Vec<u32>>> {
        match &*self.read() {
            HostData::U32(v) => Some(Arc::new(v.clone())),
            _ => None,
        }
    }
}

/// The reference backend. Stateless apart from its counters.
#[derive(Debug, Default)]
pub struct CpuBackend {
    buffers_created: AtomicU64,
    launches: AtomicU64,
    executions: AtomicU64,
}

impl CpuBackend {
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    fn new_buffer(&self, data: HostData) -> Arc<CpuBuffer> {
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Arc::new(CpuBuffer::new(data))
    }
}

fn cpu_buffer(s: &Storage) -> Result<Arc<CpuBuffer>> {
    s.downcast::<CpuBuffer>().ok_or_else(|| {
        Error::invalid(
            "cpu backend",
            "got a buffer of another backend; move the tensor to the CPU first",
        )
    })
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn upload(&self, data: &HostData) -> Result<Storage> {
        Ok(Storage::new(self.new_buffer(data.clone())))
    }

    fn download(&self, storage: &Storage) -> Result<HostData> {
        Ok(cpu_buffer(storage)?.read().clone())
    }

    fn execute(&self, plan: &Plan, inputs: &[Storage]) -> Result<Vec<Storage>> {
        super::check_inputs(plan, inputs, "cpu execute")?;
        self.executions.fetch_add(1, Ordering::Relaxed);
        let mut slots: Vec<Option<Arc<CpuBuffer>>> = vec![None; plan.slots.len()];
        for (i, slot) in plan.slots.iter().enumerate() {
            if let SlotKind::Input(k) = slot.kind {
                slots[i] = Some(cpu_buffer(&inputs[k])?);
            }
        }
        for launch in &plan.launches {
            self.launches.fetch_add(1, Ordering::Relaxed);
            let k = &launch.kernel;
            let out = k.out();
            let out_slot = plan
                .slots
                .get(out)
                .ok_or_else(|| Error::invalid("cpu execute", format!("no slot {out}")))?;
            let read = |id: usize| -> Result<&CpuBuffer> {
                slots.get(id).and_then(|s| s.as_deref()).ok_or_else(|| {
                    Error::invalid("cpu execute", format!("slot {id} read before written"))
                })
            };
            if let Kernel::IndexAddInPlace { .. } = k {
                let target = read(out)?;
                let mut data = target.data.write().unwrap_or_else(|e| e.into_inner());
                kernels::index_add_in_place(k, &mut data, &read)?;
                continue;
            }
            if let Kernel::SoftmaxXentWithGrad { grad_out, .. } = *k {
                // Two outputs: the loss and the gradient.
                let (loss, grad) = kernels::softmax_xent_with_grad(k, out_slot, &read)?;
                slots[out] = Some(self.new_buffer(loss));
                slots[grad_out] = Some(self.new_buffer(grad));
                continue;
            }
            let result = kernels::run(k, out_slot, &read)?;
            match (&slots[out], out_slot.kind) {
                // In place: the kernel read this input; overwrite its buffer.
                (Some(existing), SlotKind::Input(_)) => existing.replace(result),
                _ => slots[out] = Some(self.new_buffer(result)),
            }
        }
        let mut outputs = vec![None; plan.n_outputs];
        for (i, slot) in plan.slots.iter().enumerate() {
            if let SlotKind::Output(k) = slot.kind
                && let Some(o) = outputs.get_mut(k)
            {
                *o = slots[i].clone();
            }
        }
        outputs
            .into_iter()
            .enumerate()
            .map(|(k, s)| {
                s.map(|b| Storage::new(b)).ok_or_else(|| {
                    Error::invalid("cpu execute", format!("output {k} never written"))
                })
            })
            .collect()
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        let launches = self.launches.load(Ordering::Relaxed);
        Counters {
            buffers_created: self.buffers_created.load(Ordering::Relaxed),
            launches,
            dispatches: launches,
            submissions: self.executions.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    fn is_gpu(&self) -> bool {
        false
    }
}
