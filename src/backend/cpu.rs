//! The CPU reference backend, f32 and f64: obvious loops, except matmul,
//! which goes through `matrixmultiply` (strided GEMM, so transposes are free).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::{Backend, Counters, Storage};
use crate::dtype::{DType, HostData};
use crate::error::{Error, Result};
use crate::schedule::plan::{Kernel, Plan, SlotKind};

mod kernels;
mod scalar;

pub use scalar::Scalar;

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
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn dtype(&self) -> DType {
        self.dtype
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
}

fn cpu_buffer(s: &Storage) -> Result<&Arc<CpuBuffer>> {
    match s {
        Storage::Cpu(b) => Ok(b),
        Storage::Gpu(_) => Err(Error::invalid(
            "cpu backend",
            "got a GPU buffer; move the tensor to the CPU first",
        )),
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn upload(&self, data: &HostData) -> Result<Storage> {
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(Storage::Cpu(Arc::new(CpuBuffer::new(data.clone()))))
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
                slots[i] = Some(cpu_buffer(&inputs[k])?.clone());
            }
        }
        for launch in &plan.launches {
            self.launches.fetch_add(1, Ordering::Relaxed);
            let k = &launch.kernel;
            let out = k.out();
            let out_slot = &plan.slots[out];
            let read = |id: usize| -> Result<&CpuBuffer> {
                slots[id].as_deref().ok_or_else(|| {
                    Error::invalid("cpu execute", format!("slot {id} read before written"))
                })
            };
            if let Kernel::IndexAddInPlace { .. } = k {
                let target = read(out)?;
                let mut data = target.data.write().unwrap_or_else(|e| e.into_inner());
                kernels::index_add_in_place(k, &mut data, &read)?;
                continue;
            }
            let result = kernels::run(k, out_slot, &read)?;
            match (&slots[out], out_slot.kind) {
                // In place: the kernel read this input; overwrite its buffer.
                (Some(existing), SlotKind::Input(_)) => existing.replace(result),
                _ => {
                    self.buffers_created.fetch_add(1, Ordering::Relaxed);
                    slots[out] = Some(Arc::new(CpuBuffer::new(result)));
                }
            }
        }
        let mut outputs = vec![None; plan.n_outputs];
        for (i, slot) in plan.slots.iter().enumerate() {
            if let SlotKind::Output(k) = slot.kind {
                outputs[k] = slots[i].clone().map(Storage::Cpu);
            }
        }
        outputs
            .into_iter()
            .enumerate()
            .map(|(k, s)| {
                s.ok_or_else(|| Error::invalid("cpu execute", format!("output {k} never written")))
            })
            .collect()
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        Counters {
            buffers_created: self.buffers_created.load(Ordering::Relaxed),
            launches: self.launches.load(Ordering::Relaxed),
            submissions: self.executions.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    fn is_gpu(&self) -> bool {
        false
    }
}
